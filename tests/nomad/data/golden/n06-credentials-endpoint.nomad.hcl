# Group "legacy" runs an SDK too old for web identity: webid_mode asks for
# the container-credentials endpoint. Its tasks share the agent's loopback
# because the group network is in bridge mode. The role comes from a
# variable, so the agent gets the same expression.
variable "role" {
  type    = string
  default = "arn:aws:iam::111122223333:role/legacy"
}

job "billing" {
  datacenters = ["dc1"]

  group "legacy" {
    meta {
      webid_role_arn = var.role
      webid_mode     = "credentials-endpoint"
    }

    network {
      mode = "bridge"
      port "http" { to = 8080 }
    }

    task "invoicer" {
      driver = "docker"

      config {
        image = "registry.example/billing/invoicer:1.4"
        ports = ["http"]
      }

      env {
        AWS_REGION = "eu-west-1"
        AWS_CONTAINER_CREDENTIALS_FULL_URI     = "http://127.0.0.1:8082/v1/credentials"
        AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE = "${NOMAD_ALLOC_DIR}/webid/credentials-auth-token"
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
        WEBID_PROVIDER                    = "oidc"
        WEBID_AUTHORITY                   = "https://idp.example/tenant1"
        WEBID_CLIENT_ID                   = "webid-app"
        WEBID_CLIENT_SECRET_FILE          = "${NOMAD_SECRETS_DIR}/client-secret"
        WEBID_AUDIENCE                    = "sts.amazonaws.com"
        WEBID_TOKEN_FILE                  = "${NOMAD_ALLOC_DIR}/webid/token"
        WEBID_CREDENTIALS_AUTH_TOKEN_FILE = "${NOMAD_ALLOC_DIR}/webid/credentials-auth-token"
      }

      template {
        destination = "secrets/client-secret"
        data        = "{{ with nomadVar \"nomad/jobs/billing/legacy\" }}{{ .webid_client_secret }}{{ end }}"
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
        WEBID_PROVIDER                    = "oidc"
        WEBID_AUTHORITY                   = "https://idp.example/tenant1"
        WEBID_CLIENT_ID                   = "webid-app"
        WEBID_CLIENT_SECRET_FILE          = "${NOMAD_SECRETS_DIR}/client-secret"
        WEBID_AUDIENCE                    = "sts.amazonaws.com"
        WEBID_TOKEN_FILE                  = "${NOMAD_ALLOC_DIR}/webid/token"
        WEBID_SERVE_CREDENTIALS           = "true"
        WEBID_ROLE_ARN                    = var.role
        WEBID_CREDENTIALS_LISTEN          = "127.0.0.1:8082"
        WEBID_CREDENTIALS_AUTH_TOKEN_FILE = "${NOMAD_ALLOC_DIR}/webid/credentials-auth-token"
      }

      template {
        destination = "secrets/client-secret"
        data        = "{{ with nomadVar \"nomad/jobs/billing/legacy\" }}{{ .webid_client_secret }}{{ end }}"
        change_mode = "restart"
      }

      resources {
        cpu    = 50
        memory = 128
      }
    }
  }
}
