"""Director settings: read by all, changed by admins, and they take effect."""

from tests.support.api import start_run


def test_admins_change_the_settings_and_runs_follow_them(api, project, services):
    assert api.get("/director/settings").data["max_iterations_default"] == 3
    changed = api.patch("/director/settings", {"max_iterations_default": 5, "include_images": False})
    assert changed.status_code == 200 and changed.data["version"] == 1
    run = start_run(api, tasks=1)
    assert run["max_iterations"] == 5                       # the default when the run gives none
    assert start_run(api, tasks=1, max_iterations=2)["max_iterations"] == 2


def test_only_admins_change_them_and_bad_input_changes_nothing(api, project, services):
    human = api.post("/keys", {"name": "h", "principal": "human", "project_ids": ["demo"]}).data["key"]
    assert api.as_key(human).get("/director/settings").status_code == 200
    assert api.as_key(human).patch("/director/settings", {"auto_advance": False}).status_code == 403
    for body in ({}, {"max_iterations_default": 0}, {"unknown": 1}, {"vision_model": None}):
        assert api.patch("/director/settings", body).status_code == 400
    assert api.get("/director/settings").data["version"] == 0
