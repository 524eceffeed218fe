"""Kubernetes injector: admission webhook, offline injection and install manifests.

Modules, lowest layer first:

- ``options``: process settings (flags) and per-pod options (annotations,
  mapping-file defaults), every value validated with a message naming where.
- ``fragments``: the containers, volumes, mounts and env entries rendered from
  ``templates/kubernetes/`` (cached per distinct configuration).
- ``patch``: pure JSON Patch building from a pod and its options.
- ``review``: AdmissionReview in, AdmissionReview out (bytes to bytes).
- ``webhook``: the HTTPS server with certificate reload, and the metrics port.
- ``offline``: ``inject k8s`` over multi-document YAML.
- ``manifests``: the YAML that installs the webhook.
- ``cli`` and ``plugin``: the click commands and their registration.
"""
