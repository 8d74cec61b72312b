"""The DAGs' task bodies: `training` and `retraining` hold one step per task; `records` what crosses
task boundaries; `steps.call` the DAG side of that boundary; `params` the trigger forms."""
