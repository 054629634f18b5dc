# the Cloud SQL Admin API, which the proxy calls for certificates
gcloud services enable sqladmin.googleapis.com --project=PROJECT_ID
# the Cloud SQL for PostgreSQL instance (takes several minutes)
gcloud sql instances create workbook-db --database-version=POSTGRES_17 --edition=ENTERPRISE --tier=db-custom-1-3840 --region=asia-northeast1 --project=PROJECT_ID
# the app's database
gcloud sql databases create app --instance=workbook-db --project=PROJECT_ID
# the database user, with the password the Secret holds
gcloud sql users create app --instance=workbook-db --password=GENERATED_PASSWORD --project=PROJECT_ID
# the Google service account the pods act as
gcloud iam service-accounts create web-sql '--display-name=workbook app: Cloud SQL client' --project=PROJECT_ID
# which may connect to Cloud SQL instances of the project
gcloud projects add-iam-policy-binding PROJECT_ID --member=serviceAccount:web-sql@PROJECT_ID.iam.gserviceaccount.com --role=roles/cloudsql.client --condition=None --project=PROJECT_ID
# Workload Identity: the Kubernetes service account may act as it
gcloud iam service-accounts add-iam-policy-binding web-sql@PROJECT_ID.iam.gserviceaccount.com --role=roles/iam.workloadIdentityUser '--member=serviceAccount:PROJECT_ID.svc.id.goog[default/web]' --project=PROJECT_ID
