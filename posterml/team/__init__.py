"""The team tracking server: who may do what.

``mlflow server --app-name basic-auth`` guards runs, models and artifacts with MLflow's own
users and permissions; posterml adds the shop's roles (``roles``, ``posterml users``), one
rule MLflow lacks (``alias_guard``: only MANAGE moves ``@champion``), the server's two
secret files (``server_files``: MLflow's auth config ``basic_auth.ini`` and the
``server.env`` the server loads, written by ``posterml users init``) and the one line its
commands print when the server refuses (``refusals``).
"""
