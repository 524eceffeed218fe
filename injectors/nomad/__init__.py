"""The Nomad injector: rewrite a job so its tasks get AWS credentials.

``webid-agent inject nomad JOBFILE`` adds, to each opted-in group, a prestart
task writing the first token, a prestart sidecar keeping it fresh, and the
AWS web identity variables in every other task. HCL input is edited in place
(the user's text is never regenerated); JSON keeps its wrapper shape; the API
mode parses, plans and submits through a Nomad server.
"""
