"""The URLs a job calls for a check (the ping URL scheme), as the dashboard and `heartfly check-config` list them."""

from __future__ import annotations

from heartfly.core.config import CheckConfig, Config


def success_url(config: Config, check: CheckConfig) -> str:
    """The check's plain ping URL: a success."""
    return f"{config.server.public_url}/ping/{check.key}"


def ping_urls(config: Config, check: CheckConfig) -> list[tuple[str, str]]:
    """Every URL a job may call for this check, with what each means."""
    base = config.server.public_url
    urls = [
        ("success", success_url(config, check)),
        ("start", f"{base}/ping/{check.key}/start"),
        ("failure", f"{base}/ping/{check.key}/fail"),
        ("exit status", f"{base}/ping/{check.key}/$?"),
        ("log line", f"{base}/ping/{check.key}/log"),
        ("progress", f"{base}/ping/{check.key}/progress"),
        ("JSON", f"{base}/api/v1/heartbeat/{check.key}"),
    ]
    if check.start_key:
        urls.append(("start (start_key)", f"{base}/api/v1/heartbeat/{check.start_key}"))
    if check.fail_key:
        urls.append(("failure (fail_key)", f"{base}/api/v1/heartbeat/{check.fail_key}"))
    if config.server.ping_key:
        urls.append(("by name", f"{base}/ping/{config.server.ping_key}/{check.name}"))
    return urls


JOB = "/path/to/job"  # a placeholder the operator replaces with the job's own command
WORKER = "WORKER"  # a fan-in worker's name among the check's members, replaced on each worker
BATCH_ID = "$(date +\\%F-\\%H\\%M)"  # a fan-in batch's run id: the minute its line started (cron needs % escaped)


def cron_schedule(check: CheckConfig) -> str | None:
    """The check's schedule as crontab's five fields: its own `cron`, or an `every` crontab can say
    (a whole number of minutes or hours that divides the hour or the day, or a day); else None."""
    if check.cron is not None:
        return check.cron
    every = check.every
    if every is None or every % 60:
        return None
    minutes = int(every // 60)
    if minutes == 1440:  # before the hours' steps: "*/24" steps past the range crontab(5) gives
        return "0 0 * * *"
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0 and 24 % (minutes // 60) == 0:
        return "0 * * * *" if minutes == 60 else f"0 */{minutes // 60} * * *"
    return None


def crontab_lines(config: Config, check: CheckConfig) -> list[tuple[str, str]]:
    """Ready crontab lines for the check: through `heartfly run` (start and end pings, exit status,
    the output's tail, retries and spooling), and the plain curl form. SCHEDULE where crontab cannot
    say the check's schedule (a pipeline step, `every = "90m"`)."""
    when = cron_schedule(check) or "SCHEDULE"
    if check.expect is not None:
        # A fan-in's workers share their batch's run id: without one, `heartfly run` gave each a
        # fresh one, 8 batches of 1, each told incomplete. The minute the line started names the
        # batch (taken before the job: its workers end at different times); with `members`, each
        # names itself, or its success counts in no batch.
        url = success_url(config, check) + (f"?member={WORKER}" if check.members else "")
        target = f'"{url}"' if check.members else run_target(config, check)
        query = f"rid=$B&member={WORKER}" if check.members else "rid=$B"
        curl = f'curl -fsS -m 10 --retry 5 -o /dev/null "{success_url(config, check)}?{query}"'
        return [
            ("heartfly run", f'{when} heartfly run {target} --rid "{BATCH_ID}" -- {JOB}'),
            ("curl", f"{when} B={BATCH_ID}; {JOB} && {curl}"),
        ]
    return [
        ("heartfly run", f"{when} heartfly run {run_target(config, check)} -- {JOB}"),
        ("curl", f"{when} {JOB} && curl -fsS -m 10 --retry 5 -o /dev/null {success_url(config, check)}"),
    ]


def run_target(config: Config, check: CheckConfig) -> str:
    """What `heartfly run` is given for the check: its name, or its success URL where a name would
    not find it. `heartfly run NAME` looks NAME up in the config file, else addresses it by the
    file's ping_key: a check kept in the database alone is found neither way."""
    if check.origin == "file" or config.server.ping_key:
        return check.name
    return success_url(config, check)
