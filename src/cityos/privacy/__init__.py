"""Privacy: pseudonyms, declared datasets and their retention, residents' requests, and
differentially private releases with a budget ledger (docs/privacy.md).

Services use it through these names; it talks to the hub only through a HubClient.
"""

from .datasets import Dataset, LegalBasis, declare, declared
from .errors import BudgetExceeded, InvalidRelease, MissingKey, PrivacyError, UnknownDataset
from .ledger import Ledger
from .pseudonym import Pseudonymiser
from .release import Release, release_counts
from .report import privacy_report
from .requests import access, erase
from .retention import run_retention
from .settings import PrivacySettings, load_settings

__all__ = [
    "BudgetExceeded",
    "Dataset",
    "InvalidRelease",
    "LegalBasis",
    "Ledger",
    "MissingKey",
    "PrivacyError",
    "PrivacySettings",
    "Pseudonymiser",
    "Release",
    "UnknownDataset",
    "access",
    "declare",
    "declared",
    "erase",
    "load_settings",
    "privacy_report",
    "release_counts",
    "run_retention",
]
