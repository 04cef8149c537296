"""Ready-to-deploy CDKTF stacks: `cdktf.json` runs `stacks/app.py`, which synthesizes every stack listed
there. Each stack is one module with a `NAME` and a `define(stack)` function; settings come from the
environment or cdktf context (see `settings.py`) with defaults that point at `tokendrop sandbox`."""
