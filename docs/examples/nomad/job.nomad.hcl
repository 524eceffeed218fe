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
      }

      resources {
        cpu    = 500
        memory = 256
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
