import subprocess
import sys
from pathlib import Path

from tests.support.env import process_env

CLI = Path(sys.executable).with_name("callreel")


def run(*args, env):
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env=env, timeout=120)


def test_migrate_twice_on_postgres(pg_url, tmp_path):
    import psycopg2

    env = process_env(DATABASE_URL=pg_url)
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    conn.cursor().execute("DROP TABLE IF EXISTS calls, callreel_segments CASCADE")
    first = run("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert "created table calls" in first.stdout
    second = run("migrate", env=env)
    assert second.returncode == 0 and "schema is up to date" in second.stdout
    cur = conn.cursor()
    cur.execute("SELECT column_name FROM information_schema.columns WHERE table_name = 'calls'")
    assert "video_processing_duration" in {r[0] for r in cur.fetchall()}
    conn.close()


def test_invalid_configuration_exits_with_every_problem(tmp_path):
    result = run("migrate", env=process_env(BROKER_URL="nope", PANEL_HEIGHT="tall"))
    assert result.returncode == 2
    assert "BROKER_URL" in result.stderr and "PANEL_HEIGHT" in result.stderr
