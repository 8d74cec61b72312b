"""StreamGuard's Airflow operators and sensors for the local training backend.

`hooks.LocalTrainingHook` does all I/O, `operators.LocalTrainingOperator` starts (or reconnects
to) a job from a ``CreateTrainingJob`` dict, `sensors.LocalTrainingSensor` waits for it, as the
amazon provider's SageMaker operator and sensor do for SageMaker. `reconnect` adapts the provider's
operator so that task retries adopt the existing job. Modules import only airflow.sdk and light
streamguard modules, so DAG parsing stays fast.
"""
