def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: ports and runs realistic projects in subprocesses (slower)")
