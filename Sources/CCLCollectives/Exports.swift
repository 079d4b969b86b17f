/// The collective API's types (communicator, devices, calls, dtypes) come with the backends.
@_exported import CCLCollectiveAPI
