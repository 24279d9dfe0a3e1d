"""IAM offline: every principal other than the learner's administrator key is authorized
request by request against the policies as deployed (authorizer.py)."""
