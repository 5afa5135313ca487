"""The web dashboard on the bot's web server (WEB_PORT): /dashboard's one-time links and
sessions (auth.py), the guard and rendering (site.py), the pages (pages.py), what their forms
do (actions.py), the charts drawn as SVG on the server (charts.py), and the sub-application
that holds them (routes.py)."""
