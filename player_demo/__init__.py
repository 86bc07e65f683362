"""Static viewer pages served by the LiveCart server (HTML, CSS and JS modules; no logic)."""
