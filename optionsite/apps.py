from django.apps import AppConfig


class OptionsiteConfig(AppConfig):
    name = "optionsite"
    verbose_name = "Options chain tracker"

    def ready(self) -> None:
        from optionsite import (
            checks,  # noqa: F401 - registers the system checks
            login_throttle,  # noqa: F401 - counts failed logins (user_login_failed)
        )
