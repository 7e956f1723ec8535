"""Local stand-ins for AWS: resources built from template.yaml, and an SQS event source mapping."""
