"""Where a ``CreateTrainingJob`` request runs when it does not go to SageMaker.

`local` (`LocalTrainingBackend`) creates, describes and stops jobs on this machine with SageMaker's
container contract; `supervisor` is the process that runs one such job. The request itself is built
in `streamguard.jobs.request`; which backend a deployment uses is ``STREAMGUARD_BACKEND``.
"""
