"""StreamGuard's Airflow operators, sensors and trigger for the local training backend.

`hooks.LocalTrainingHook` does all I/O. `operators.LocalTrainingOperator` starts (or reconnects
to, or restarts as the next attempt) a job from a ``CreateTrainingJob`` dict and, deferrable,
follows it to its end through `triggers.LocalTrainingTrigger`; `sensors.LocalTrainingSensor`
only watches a job it is given, as the amazon provider's SageMaker operator, trigger and sensor do
for SageMaker. `reconnect` adapts the provider's operator and sensor the same way. Only the
operators start jobs. Modules import only airflow.sdk and light streamguard modules, so DAG
parsing stays fast.
"""
