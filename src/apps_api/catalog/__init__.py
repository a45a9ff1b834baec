"""What every domain knows of an app: who may see or install it, its shared views and loaders."""
