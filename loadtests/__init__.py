"""flowgate Locust load profiles (only locustfile.py is a locustfile; helpers are _-prefixed)."""
