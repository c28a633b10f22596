"""Console commands of memla-plugin (``memla-edit``); ``memla-setup`` lives in memla_plugin.setup_env."""
