"""`python -m bench.load`: many simulated users, each a real `ChatClient`, spread over
worker processes, sending at a given aggregate rate or ramping until delivery breaks
(issue 11). See docs/performance.md, "1,000 users"."""
