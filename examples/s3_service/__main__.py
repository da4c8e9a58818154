"""``python -m examples.s3_service``: serve the example S3 service on one port."""

from __future__ import annotations

import argparse
import logging
from datetime import timedelta
from pathlib import Path

from werkzeug.serving import make_server

from examples.s3_service import create_app
from fedbroker.enforce import open_local_checker


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m examples.s3_service",
        description="An S3-compatible service on local disk, checked by fedbroker.",
    )
    parser.add_argument(
        "--broker-data-dir",
        type=Path,
        required=True,
        help="the broker's data directory (its master key, SQLite directory)",
    )
    parser.add_argument("--database-url", help="the broker's database, if not SQLite in D")
    parser.add_argument("--config", type=Path, help="the broker's configuration file")
    parser.add_argument("--root", type=Path, required=True, help="where buckets are stored")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument(
        "--account-id", help="the account owning the buckets (default: the caller's)"
    )
    parser.add_argument(
        "--check-interval",
        type=float,
        default=1.0,
        help="seconds a directory change may take to reach the checks",
    )
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    checker = open_local_checker(
        args.broker_data_dir,
        args.database_url,
        args.config,
        check_interval=timedelta(seconds=args.check_interval),
    )
    app = create_app(checker, args.root, account_id=args.account_id)
    server = make_server(args.host, args.port, app, threaded=True)
    logging.getLogger("examples.s3_service").info(
        "serving S3 from %s on http://%s:%d", args.root, args.host, server.port
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
