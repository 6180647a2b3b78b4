"""`jobpulse demo`: a simulated workload against a server, with the callback receiver and the
LLM batch provider it needs running beside it on loopback, so every panel has something.
"""
