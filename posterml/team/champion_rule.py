"""The hook's name in ``basic_auth.ini`` files written before it became ``alias_guard``.

``posterml users init`` never rewrites an existing config, so a team server set up earlier
still names ``posterml.team.champion_rule:authenticate``; this keeps it guarded.
"""

from posterml.team.alias_guard import authenticate

__all__ = ["authenticate"]
