"""Training and processing jobs: what is sent to a backend and what comes back.

| module | what is inside |
|---|---|
| `request` | the ``CreateTrainingJob`` request of a training or evaluate job (both backends), hyperparameter encoding, `validate_request` |
| `names` | deterministic job names (`make_job_name`) |
| `metrics` | the ``MetricDefinitions`` of the entry's log lines and their parser |
| `images` | the PyTorch DLC images, GPU detection, the serving container |
| `record` | `JobRecord`, the small typed record of a job downstream tasks read |
| `processing` | the ``CreateProcessingJob`` request of graph building, and running it |

Where a job runs is `streamguard.backends` (the local backend) or SageMaker; what a job's attempts
are is `streamguard.lifecycle`. The record's names are importable from the package itself (the
operator plugins' hook reads them so).
"""

from streamguard.jobs.record import (ACTIVE_STATES, ALL_STATES, BACKENDS, FAILED_STATES, TERMINAL_STATES,
                                     JobRecord, job_record_from_describe)

__all__ = ["ACTIVE_STATES", "ALL_STATES", "BACKENDS", "FAILED_STATES", "TERMINAL_STATES", "JobRecord",
           "job_record_from_describe"]
