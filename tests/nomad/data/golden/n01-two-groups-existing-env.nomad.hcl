# Only group "api" opts in (meta webid_role_arn). Its existing env block is
# merged, not replaced; group "cache" is left exactly as written. The main
# task starts only after a prestart task has written the first token.
job "storefront" {
  datacenters = ["dc1"]
  type        = "service"

  group "api" {
    count = 2

    meta {
      webid_role_arn = "arn:aws:iam::111122223333:role/storefront-api"
    }

    network {
      port "http" { to = 8080 }
    }

    task "server" {
      driver = "docker"

      config {
        image = "registry.example/storefront/api:2.3.1"
        ports = ["http"]
      }

      env {
        LOG_LEVEL = "info"
        BUCKET    = "storefront-assets"
        AWS_ROLE_ARN                = "arn:aws:iam::111122223333:role/storefront-api"
        AWS_WEB_IDENTITY_TOKEN_FILE = "${NOMAD_ALLOC_DIR}/webid/token"
      }

      resources {
        cpu    = 500
        memory = 256
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
        data        = "{{ with nomadVar \"nomad/jobs/storefront/api\" }}{{ .webid_client_secret }}{{ end }}"
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
        data        = "{{ with nomadVar \"nomad/jobs/storefront/api\" }}{{ .webid_client_secret }}{{ end }}"
        change_mode = "restart"
      }

      resources {
        cpu    = 50
        memory = 128
      }
    }
  }

  group "cache" {
    task "redis" {
      driver = "docker"

      config {
        image = "registry.example/redis:7"
      }
    }
  }
}
