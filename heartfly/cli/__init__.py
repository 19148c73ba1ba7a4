"""The operator's command line: `heartfly serve`, `status`, `history`, `init`, pause/resume and the
other commands that talk to a server or its database (the job side is heartfly.client)."""
