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
      }
    }
  }
}
