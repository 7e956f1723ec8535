"""The adapters: AWS clients and what talks to DynamoDB, SQS, DynamoDB Streams and SSM. Only this
package imports botocore; `ClientError` codes become domain errors here and nowhere else."""
