# JupyterHub's configuration for `./course class` (coursehost/classctl.py starts the hub with it).
# Everything that varies comes from the environment classctl sets; the seat's limits from
# coursehost.classroom.SEAT, the one place they live.
# ruff: noqa: F821 (get_config is JupyterHub's)
import os
import sys

from coursehost import classroom

c = get_config()  # noqa: F821
state = os.environ["COURSE_CLASS_STATE"]
klass = os.environ["COURSE_CLASS_ID"]

# the hub: its public address (loopback unless the teacher chose a LAN address), its API on the
# class network's gateway, which every seat reaches
c.JupyterHub.ip = os.environ.get("COURSE_CLASS_IP", "127.0.0.1")
c.JupyterHub.port = int(os.environ.get("COURSE_CLASS_PORT", "8000"))
c.JupyterHub.hub_ip = classroom.CLASS_GATEWAY
c.JupyterHub.hub_port = classroom.HUB_API_PORT
c.JupyterHub.hub_connect_ip = classroom.CLASS_GATEWAY
c.JupyterHub.db_url = f"sqlite:///{state}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = f"{state}/jupyterhub_cookie_secret"
c.JupyterHub.pid_file = f"{state}/jupyterhub.pid"
c.JupyterHub.cleanup_servers = True          # stopping the hub stops every seat (and removes it)
c.ConfigurableHTTPProxy.command = [os.environ["COURSE_CLASS_PROXY"]]
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(os.environ.get('COURSE_CLASS_PORT', '8000')) + 1}"
c.ConfigurableHTTPProxy.pid_file = f"{state}/proxy.pid"

# learners sign in with a name of their choosing and the class code; the teacher, "teacher", with
# the teacher's password, is the admin (JupyterHub's SharedPasswordAuthenticator: the class code
# lets its holder sign in as any learner, so it is for a class, not for strangers)
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = os.environ["COURSE_CLASS_CODE"]
c.SharedPasswordAuthenticator.admin_password = os.environ["COURSE_TEACHER_PASSWORD"]
c.Authenticator.admin_users = {"teacher"}
c.Authenticator.allow_all = True

# a seat per learner: the lab container and its own Docker daemon (coursehost.classroom)
c.JupyterHub.spawner_class = classroom.make_spawner_class()
c.DockerSpawner.image = os.environ["COURSE_LAB_IMAGE"]
c.DockerSpawner.pull_policy = "never"
c.DockerSpawner.remove = True
c.DockerSpawner.use_internal_ip = True
c.DockerSpawner.prefix = f"dc-class-{klass}"
c.DockerSpawner.name_template = "{prefix}-{username}-lab"
c.DockerSpawner.cmd = ["python3", "-m", "jupyterhub.singleuser"]
c.DockerSpawner.notebook_dir = "/home/learner/course"
c.DockerSpawner.mem_limit = classroom.SEAT["lab_memory"]
c.DockerSpawner.cpu_limit = classroom.SEAT["lab_cpus"]
c.Spawner.default_url = "/lab/tree/notebooks"
c.Spawner.start_timeout = 180
c.Spawner.http_timeout = 120

# seats nobody uses are stopped, and so removed
c.JupyterHub.services = [{
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={classroom.SEAT['idle_timeout']}"],
}]
c.JupyterHub.load_roles = [{
    "name": "idle-culler",
    "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
    "services": ["idle-culler"],
}]

# `./course bench --class N` signs learners in through the REST API with a token of its own
if os.environ.get("COURSE_BENCH_TOKEN"):
    c.JupyterHub.services.append({"name": "course-bench", "api_token": os.environ["COURSE_BENCH_TOKEN"]})
    c.JupyterHub.load_roles.append({"name": "course-bench", "services": ["course-bench"],
                                    "scopes": ["admin:users", "admin:servers", "list:users", "read:users"]})
