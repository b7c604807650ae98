"""google.colab.output: the custom widget manager switch (ipywidgets 8 needs it in Colab), recorded."""

from google.colab import log


def enable_custom_widget_manager():
    log("enable_custom_widget_manager")
