"""Bring your own data: a product catalog (CSV/Parquet) and labelled image datasets (ImageFolder,
YOLO classify/detect, COCO JSON, Label Studio JSON export) into the depot, validated first."""
