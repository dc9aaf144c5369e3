"""PURE planning: user arguments -> validated plans (specs + decide), before any object is rendered.

components.py has one `plan_*` function per component; service.py the
shape of a service (its variants, placement and URL).
"""
