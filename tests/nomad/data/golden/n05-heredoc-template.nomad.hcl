# The task carries its own template with a heredoc, consul-template syntax
# and Nomad interpolation. All of it must come out unchanged, and the
# injected template block must not collide with it.
job "etl" {
  datacenters = ["dc1"]
  type        = "batch"

  group "run" {
    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/etl"
    }

    task "transform" {
      driver = "docker"

      config {
        image   = "registry.example/etl/transform:4"
        command = "/app/run.sh"
      }

      template {
        destination = "${NOMAD_TASK_DIR}/settings.env"
        env         = true
        data        = <<EOT
SOURCE_BUCKET={{ with nomadVar "nomad/jobs/etl" }}{{ .source_bucket }}{{ end }}
SCRATCH=${NOMAD_ALLOC_DIR}/scratch
EOT
      }

      env {
        AWS_ROLE_ARN                = "arn:aws:iam::111122223333:role/etl"
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
        data        = "{{ with nomadVar \"nomad/jobs/etl/run\" }}{{ .webid_client_secret }}{{ end }}"
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
        data        = "{{ with nomadVar \"nomad/jobs/etl/run\" }}{{ .webid_client_secret }}{{ end }}"
        change_mode = "restart"
      }

      resources {
        cpu    = 50
        memory = 128
      }
    }
  }
}
