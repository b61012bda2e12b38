"""The operator page's stylesheet and script, served by the app itself (no CDN, no build step)."""
