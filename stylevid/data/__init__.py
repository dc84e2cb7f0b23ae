"""Video data: synthetic faces, a dataset's index, files, reader and writer, the clip loader, preparation."""
