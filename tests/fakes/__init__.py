"""Local fakes of third-party services, run over real HTTP in the tests."""
