"""SpecGym environments; importing this package registers the ``SpecGym/...`` ids."""
