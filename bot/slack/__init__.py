"""dcv-bot in Slack: ``/dcv`` parsing, the Bolt app, its listeners and the runtimes that serve it."""
