"""What every callreel service imports: settings, database models, storage, broker, contracts.

Modules:
    settings    every environment variable, validated in one place
    db, models  peewee models of the ``calls`` table and the generation segments
    migrations  idempotent schema migrations (``callreel migrate``)
    keys        object keys and call-id validation
    storage     S3 or a local folder, streamed
    contracts   every cross-service message: actor, queue, arguments
    broker      Dramatiq on RabbitMQ or in-process
    progress    a call's stage bookkeeping, safe under redelivery
    logs        one line per event, text or JSON
    runtime     service start-up
"""
