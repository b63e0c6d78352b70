"""``glam demo``: glam end to end on an embedded AWS, in four acts, in about a minute.

    from engine.demo import DemoOptions, run_demo
    exit_code = run_demo(DemoOptions(folder=Path(".glam/demo")))

It starts the embedded AWS (moto behind the fidelity proxy), builds an account like the one a
Terraform setup would make, writes a sample repository (``engine.demo.repo``) and runs the real
engine (``engine.runtime.engine.Engine``, ``run(once=True)`` per act) against it:

1. first deployment: three functions, fed by SQS, behind the HTTP API and behind the ALB;
2. a canary: a new version of the API function gets 50 % of the traffic, then 100 %;
3. a rollback: a broken version whose CloudWatch alarm fires during the canary;
4. a delete: a function's ``_lambdadef.json`` is removed.

The demo plays the part of CloudWatch in act 3: when the event log shows the broken version
receiving canary traffic, it sets the alarm to ALARM, as real errors would.
"""

from engine.demo.run import DemoFailed, DemoOptions, run_demo

__all__ = ["DemoFailed", "DemoOptions", "run_demo"]
