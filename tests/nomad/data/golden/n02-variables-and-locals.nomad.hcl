# Expressions must stay expressions: var.region, local.image and the
# interpolations below are written back as the user wrote them, never as
# quoted "${...}" strings. In API mode, Nomad's own parse endpoint evaluates
# them before injection.
variable "region" {
  type    = string
  default = "eu-west-1"
}

variable "replicas" {
  type    = number
  default = 3
}

locals {
  image = "registry.example/ingest/worker:${var.region}-1.0"
}

job "ingest" {
  datacenters = ["dc1"]

  group "workers" {
    count = var.replicas

    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/ingest"
    }

    task "worker" {
      driver = "docker"

      config {
        image = local.image
        args  = ["--region", var.region, "--tmp", "${NOMAD_TASK_DIR}/tmp"]
      }

      env {
        AWS_REGION = var.region
        AWS_ROLE_ARN                = "arn:aws:iam::111122223333:role/ingest"
        AWS_WEB_IDENTITY_TOKEN_FILE = "${NOMAD_ALLOC_DIR}/webid/token"
      }
    }

    task "webid-token" {
      driver = "docker"

      lifecycle {
        hook    = "prestart"
        sidecar = false
      }

      config {
        image = "registry.example/webid-agent:pinned"
        args  = ["token", "--deadline", "60"]
      }

      env {
        WEBID_PROVIDER           = "oidc"
        WEBID_AUTHORITY          = "https://idp.example/tenant1"
        WEBID_CLIENT_ID          = "webid-app"
        WEBID_CLIENT_SECRET_FILE = "${NOMAD_SECRETS_DIR}/client-secret"
        WEBID_AUDIENCE           = "sts.amazonaws.com"
        WEBID_TOKEN_FILE         = "${NOMAD_ALLOC_DIR}/webid/token"
      }

      template {
        destination = "secrets/client-secret"
        data        = "{{ with nomadVar \"nomad/jobs/ingest/workers\" }}{{ .webid_client_secret }}{{ end }}"
        change_mode = "noop"
      }

      resources {
        cpu    = 50
        memory = 128
      }
    }

    task "webid-agent" {
      driver = "docker"

      lifecycle {
        hook    = "prestart"
        sidecar = true
      }

      config {
        image = "registry.example/webid-agent:pinned"
        args  = ["run"]
      }

      env {
        WEBID_PROVIDER           = "oidc"
        WEBID_AUTHORITY          = "https://idp.example/tenant1"
        WEBID_CLIENT_ID          = "webid-app"
        WEBID_CLIENT_SECRET_FILE = "${NOMAD_SECRETS_DIR}/client-secret"
        WEBID_AUDIENCE           = "sts.amazonaws.com"
        WEBID_TOKEN_FILE         = "${NOMAD_ALLOC_DIR}/webid/token"
      }

      template {
        destination = "secrets/client-secret"
        data        = "{{ with nomadVar \"nomad/jobs/ingest/workers\" }}{{ .webid_client_secret }}{{ end }}"
        change_mode = "restart"
      }

      resources {
        cpu    = 50
        memory = 128
      }
    }
  }
}
