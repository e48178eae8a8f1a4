"""Three pools, one workflow: CPU work, GPU inference and a paid API each on their own queue.

`RouterWorkflow` runs on the default (CPU) pool and sends each step to the queue whose pool has
the right hardware or quota:

- default queue (the workflow's own, e.g. `orders` in cpu-pool.yaml): `prepare_prompt`, plain
  CPU work — TWP_ACTIVITIES=examples.three_queues.activities:default_activities
- ml (`llm-gpu` in gpu-llm-pool.yaml): "RunLLMOnGPU" on a GPU pool —
  TWP_ACTIVITIES=examples.three_queues.activities:ml_activities
  (the built-in `worker_runtime.llm.gpu:run_llm_on_gpu`, on the worker-runtime-gpu image)
- `openai`: "OpenAIChat" on a rate-limited pool —
  TWP_ACTIVITIES=examples.three_queues.activities:openai_activities
  (the built-in `worker_runtime.llm.openai:openai_chat`)

Splitting by queue lets each pool scale on its own backlog: GPUs scale to zero when idle, and
the API pool's size is capped by its quota, not by CPU load.
"""
