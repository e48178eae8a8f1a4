"""A long GPU generation job that users can watch and cancel, then get notified about.

- `workflows.LLMJobWorkflow` (any CPU pool): query "GetStatus" for progress, signal "Cancel"
  to stop the GPU work (the GPU is freed, not left generating for nobody).
- GPU pool on queue `llm-gpu`: TWP_ACTIVITIES=worker_runtime.llm.gpu:run_llm_on_gpu
- notification pool on queue `notifications`:
  TWP_ACTIVITIES=examples.gpu_llm_job.activities:notification_activities
- `client.job_status()` adds the GPU activity's own heartbeat progress to the query's answer.
"""
