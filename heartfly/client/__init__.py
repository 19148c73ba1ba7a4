"""The job side: `heartfly ping` and `heartfly run`, their transport, spool and runner. Standard
library only (and click for help texts), and cheap to import: every cron tick pays for it."""
