from django.urls import path

from tests.stacks.channels_app import views

urlpatterns = [path("", views.page_one), path("two/", views.page_two)]
