-- Argo CD health check for workerpools.io/TemporalWorkerPool.
-- Install it under resource.customizations.health.workerpools.io_TemporalWorkerPool in argocd-cm
-- (argocd-cm.yaml next to this file carries the same text; a test keeps them equal).
-- Executed with lupa by tests/e2e/test_gitops_health.py on pools in each state on the e2e
-- bed, and by tests/unit/test_gitops.py on the objects it recorded (tests/unit/fixtures/pools).
--
-- Degraded  : condition Degraded=True (rollout stalled, a child write failed, invalid spec).
-- Healthy   : the operator saw the current generation and Ready=True (a pool scaled to zero
--             stays Ready, reason ScaledToZero, so it is Healthy too).
-- Progressing: anything else (not yet observed, rolling out, replicas not ready).
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
for _, c in ipairs(obj.status.conditions) do
  if c.type == "Degraded" and c.status == "True" then
    return {status = "Degraded", message = (c.reason or "Degraded") .. ": " .. (c.message or "")}
  end
  if c.type == "Ready" then
    ready = c
  end
end
if ready ~= nil then
  local text = (ready.reason or "") .. ": " .. (ready.message or "")
  if ready.status == "True" then
    return {status = "Healthy", message = text}
  end
  hs.message = text
end
return hs
