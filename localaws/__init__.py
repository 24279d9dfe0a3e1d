"""The offline backend: a local AWS (moto server) with the lab's stacks deployed in it."""
