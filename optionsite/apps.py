from django.apps import AppConfig


class OptionsiteConfig(AppConfig):
    name = "optionsite"
    verbose_name = "Options chain tracker"

    def ready(self) -> None:
        from optionsite import checks  # noqa: F401 - registers the system checks
