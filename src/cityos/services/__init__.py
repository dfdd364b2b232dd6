"""City services: one package per service, each talking to the hub, never to each other."""
