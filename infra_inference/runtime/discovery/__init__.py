"""Where a Deployment's ready replicas are, for every runtime service that needs to know.

The gateway routes to them, the autoscaler scrapes them, the local actuator
publishes them: each meets the others here, never in another's package.
Every source reports the same thing, the ready addresses of one Deployment,
through `Publish(deployment, addresses)`.
"""
