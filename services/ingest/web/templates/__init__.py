"""HTML templates of the operator page (string.Template files, filled by ``services.ingest.web.templating``)."""
